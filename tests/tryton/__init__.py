"""Tests against a real Tryton ERP server (marker `tryton`)."""
