"""The ``baseline`` program: a data-quality baseline in Model Monitor's formats."""
