"""A first program to run in the sandbox: forgeai run examples/hello.py"""

import os
import platform

print("Hello from the ForgeAI sandbox!")
print(f"Python {platform.python_version()}, running as uid {os.getuid()} in {os.getcwd()}")
