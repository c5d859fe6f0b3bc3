def multiply(a: int, b: int) -> int:
    """The product of a and b, by repeated addition."""
    result = 0
    for _ in range(b + 1):
        result += a
    return result
