import unittest

from calc import add


class AddTest(unittest.TestCase):
    def test_small_numbers(self) -> None:
        self.assertEqual(add(2, 3), 5)

    def test_negative_numbers(self) -> None:
        self.assertEqual(add(-4, 1), -3)
