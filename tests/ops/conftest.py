"""Operations fixtures: a site administrator (the first account) and a person who is not one."""
from __future__ import annotations

import pytest


@pytest.fixture
def site_admin(factory):
    """The first account of the (emptied) install: a site administrator by registration alone."""
    return factory.user(email="root@example.com", name="Root")


@pytest.fixture
def admin_headers(factory, site_admin):
    return factory.headers(site_admin)


@pytest.fixture
def someone(factory, site_admin):
    return factory.user(email="someone@example.com", name="Someone")


@pytest.fixture
def someone_headers(factory, someone):
    return factory.headers(someone)
