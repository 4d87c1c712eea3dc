"""Name -> object registries with errors that list the valid names."""

from typing import Any, Callable, Dict, Generic, Iterator, Sequence, Type, TypeVar

T = TypeVar("T")


def check_choice(kind: str, value: Any, choices: Sequence[str],
                 error: Type[Exception] = ValueError) -> None:
  """Raises `error` listing `choices` (in their order) unless `value` is one of them: the
  registries' message for options that are a fixed tuple of names."""
  if value not in choices:
    raise error(f"unknown {kind} {value!r}; choose from: {', '.join(choices)}")


class Registry(Generic[T]):
  """A mapping from names to objects of one kind (losses, models, ...).

  `get` of an unknown name raises a ValueError that lists every valid name, so
  a typo in a config fails at start-up with the fix in the message.
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: Dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator adding the decorated object under `name`."""

    def add(obj: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is already registered")
      self._entries[name] = obj
      return obj

    return add

  def get(self, name: str) -> T:
    """The object registered under `name`; a helpful ValueError otherwise."""
    check_choice(self.kind, name, self.names())
    return self._entries[name]

  def names(self) -> list:
    """The registered names, sorted."""
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
