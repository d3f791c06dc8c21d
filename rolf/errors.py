"""Errors caused by user input (config, files, device). run.py prints these as one line, without a traceback."""


class UserError(Exception):
    pass
