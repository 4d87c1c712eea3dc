"""Name -> object registries with errors that list the valid names."""

from typing import Callable, Dict, Generic, Iterator, TypeVar

T = TypeVar("T")


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
    try:
      return self._entries[name]
    except KeyError:
      raise ValueError(
          f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}"
      ) from None

  def names(self) -> list:
    """The registered names, sorted."""
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
