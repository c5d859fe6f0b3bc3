import unittest

from calc import multiply


class MultiplyTest(unittest.TestCase):
    def test_small_numbers(self) -> None:
        self.assertEqual(multiply(3, 4), 12)

    def test_by_zero(self) -> None:
        self.assertEqual(multiply(7, 0), 0)

    def test_negative_numbers(self) -> None:
        self.assertEqual(multiply(3, -2), -6)
