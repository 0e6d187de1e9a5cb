pytest_plugins = ["tests.serve_fixture"]
