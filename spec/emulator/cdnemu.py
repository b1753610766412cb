#!/usr/bin/env python3
"""cdnemu -- local emulator of CDN vendor HTTP APIs (Alibaba Cloud CDN RPC
2014-11-11 and, on the same port, 2018-05-10 with signature V3
ACS3-HMAC-SHA256 or V2; Tencent Cloud CDN API v2 and, on the same port,
Tencent Cloud API 3.0 for CDN 2018-06-06 with TC3-HMAC-SHA256; Wangsu /
ChinaNetCenter report and ccm purge/prefetch APIs with CNC-HMAC-SHA256 or the
legacy Basic scheme; Powerleader Plcloud: an OpenStack Keystone v2.0 token
service and the Plcloud REST API with X-Auth-Token, on one port), for cdnkit's
tests and `make demo`.

Python 3 standard library only; listens on loopback only.  This file is the
entry point: the command line and the vendor registry.  The server, state,
faults and control API are in emucore.py; each vendor is one module
vendor_<name>.py.  See README.md next to this file.
"""

import argparse
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import emucore  # noqa: E402  (needs HERE on sys.path)

# --vendor name -> module (next to this file) whose VENDOR is the emucore.Vendor
# subclass.  Adding a vendor: write vendor_<name>.py, add its line here.
VENDORS = {
    "aliyun": "vendor_aliyun",
    "qcloud": "vendor_qcloud",
    "wangsu": "vendor_wangsu",
    "plcloud": "vendor_plcloud",
}


def vendor_class(name):
    return importlib.import_module(VENDORS[name]).VENDOR


def count_options(classes):
    """The vendors' item-count options, in registry order: flag -> (dest,
    default, help).  Vendors may share a flag if they agree on its default."""
    out = {}
    for name, cls in classes.items():
        if not cls.COUNT_OPTION:
            continue
        flag, default, text = cls.COUNT_OPTION
        if flag in out:
            dest, d0, names, t0 = out[flag]
            if d0 != default:
                raise SystemExit("cdnemu: vendors disagree on the default of %s" % flag)
            names.append(name)
        else:
            out[flag] = (flag.lstrip("-").replace("-", "_"), default, [name], text)
    return out


def main(argv=None):
    classes = {name: vendor_class(name) for name in VENDORS}
    counts = count_options(classes)

    ap = argparse.ArgumentParser(description="Local CDN vendor API emulator (loopback only).")
    ap.add_argument("--vendor", required=True, choices=sorted(VENDORS))
    ap.add_argument("--host", default="127.0.0.1", help="loopback address (127.x or ::1)")
    ap.add_argument("--port", type=int, default=0, help="0 = random free port")
    ap.add_argument("--latency", type=float, default=0.0,
                    help="seconds to sleep in every API request")
    ap.add_argument("--skew", type=float, default=0.0,
                    help="server clock = real clock + SKEW seconds")
    ap.add_argument("--task-seconds", type=float, default=1.0,
                    help="refresh/push tasks complete after this many seconds")
    for flag, (dest, default, names, text) in counts.items():
        ap.add_argument(flag, type=int, default=default,
                        help="%s: %s" % (", ".join(names), text))
    ap.add_argument("--port-file", help="write the bound port number to this file")
    ap.add_argument("--fixture", help="fixture JSON (default: fixtures/<vendor>.json "
                    "next to this script)")
    ap.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    args = ap.parse_args(argv)

    host = emucore.check_host(args.host)
    if host is None:
        ap.error("--host must be a loopback address (127.x.x.x or ::1), got %r" % args.host)
    if (args.latency < 0 or args.task_seconds < 0 or
            any(getattr(args, c[0]) < 0 for c in counts.values())):
        ap.error("negative values are not allowed")

    fixture = args.fixture or os.path.join(HERE, "fixtures", args.vendor + ".json")
    fixtures = emucore.load_fixtures(fixture)
    state = emucore.State(args.latency, args.skew, args.task_seconds)
    cls = classes[args.vendor]
    n = getattr(args, counts[cls.COUNT_OPTION[0]][0]) if cls.COUNT_OPTION else 0
    vendor = cls(state, fixtures, n)
    return emucore.serve(vendor, host, args.port, args.port_file, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
