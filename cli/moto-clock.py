"""moto's server with a movable clock, for the demo and the tests that need old access keys.

moto cannot back-date a key: CreateAccessKey stamps CreateDate with moto.core.utils.utcnow(),
a request signed with a key stamps its last use (iam.models.mark_account_as_visited, called for
every request naming the key, whether or not request authentication is on) with the same
function, and the credential report prints those stamps. This wrapper replaces that function,
in every moto module that imported it, with one that adds an offset read from the file named by
MOTO_CLOCK_FILE (seconds, may be negative; re-read on every call; missing or empty file = 0).
The caller (cli/emulator.ts) writes -91 days into the file, creates a key, writes 0 again: the
key is 91 days old.

Usage: python3 cli/moto-clock.py -H 127.0.0.1 -p PORT   (the arguments of python3 -m moto.server)
"""

import datetime
import importlib
import os
import sys

import moto.core.utils as core_utils

# The modules whose clock the audit tests depend on (IAM key dates, last use, the credential
# report) and the others the tests use; imported now so that their `from moto.core.utils import
# utcnow` binding exists and can be replaced. Modules imported later pick up the patched
# function from moto.core.utils itself.
for name in (
    "moto.core.responses",
    "moto.core.models",
    "moto.core.base_backend",
    "moto.iam.models",
    "moto.iam.responses",
    "moto.sts.models",
    "moto.stepfunctions.models",
    "moto.securityhub.models",
    "moto.sns.models",
    "moto.events.models",
    "moto.sqs.models",
):
    try:
        importlib.import_module(name)
    except ImportError:
        pass

_original_utcnow = core_utils.utcnow


def _offset_seconds() -> float:
    path = os.environ.get("MOTO_CLOCK_FILE")
    if not path:
        return 0.0
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return 0.0
    return float(text) if text else 0.0


def utcnow() -> datetime.datetime:
    return _original_utcnow() + datetime.timedelta(seconds=_offset_seconds())


patched = []
for module_name, module in list(sys.modules.items()):
    if module is None or not module_name.startswith("moto"):
        continue
    try:
        if getattr(module, "utcnow", None) is _original_utcnow:
            setattr(module, "utcnow", utcnow)
            patched.append(module_name)
    except Exception:  # a lazily loading module that refuses getattr: not moto's clock
        continue

# The functions the audit relies on must now see the moved clock; fail loudly if moto changed.
import moto.iam.models as iam_models  # noqa: E402

if iam_models.utcnow is not utcnow:
    sys.exit("moto-clock: could not patch moto.iam.models.utcnow (moto changed?)")
print(f"moto-clock: patched utcnow in {len(patched)} modules", file=sys.stderr, flush=True)

from moto.server import main  # noqa: E402

main(sys.argv[1:])
