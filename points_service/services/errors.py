"""What a use case can refuse with; the HTTP layer maps each to a status."""


class InvalidInput(ValueError):
    """422: the request is well-formed but a field's value cannot be accepted."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Conflict(Exception):
    """409: the key is taken by a different request, or the balance is too low."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooMany(Exception):
    """429: more requests than a limit allows; the same request may come again after
    `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.field = field
