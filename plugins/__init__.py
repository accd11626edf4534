"""zoo's built-in plugins, one module each; installed as `zoo_plugins`.

They use the same hooks a third-party plugin does (see zoo/hookspecs.py); zoo.contract.registry loads them
before the entry points of other distributions.
"""
