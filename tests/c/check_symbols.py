#!/usr/bin/env python3
"""The shared library exports exactly the functions the header declares."""
import re
import subprocess
import sys

header, library = sys.argv[1], sys.argv[2]
text = open(header, encoding="utf-8").read()
declared = set(re.findall(r"LIMINAL_EXPORT\s+[^;(]*?\b(liminal_[a-z0-9_]+)\s*\(", text, re.S))
nm = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                    capture_output=True, text=True).stdout
exported = {line.split()[-1] for line in nm.splitlines()
            if line.split() and line.split()[-1].startswith("liminal_")}
missing, extra = declared - exported, exported - declared
if missing or extra:
    print("declared but not exported:", sorted(missing))
    print("exported but not declared:", sorted(extra))
    sys.exit(1)
print(f"check_symbols: {len(declared)} functions, header and library agree")
