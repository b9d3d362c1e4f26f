"""Test infrastructure shared by every test folder."""
