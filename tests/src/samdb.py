"""Changes a Samba AD database for the tests, one command a line on standard input:
user NAME PASSWORD | group NAME | add GROUP MEMBER | remove GROUP MEMBER |
disable NAME | delete NAME. Usage: samdb.py SMB_CONF SAM_LDB."""
import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    op, args = words[0], words[1:]
    if op == "user":
        db.newuser(args[0], args[1])
    elif op == "group":
        db.newgroup(args[0])
    elif op == "add":
        db.add_remove_group_members(args[0], [args[1]], add_members_operation=True)
    elif op == "remove":
        db.add_remove_group_members(args[0], [args[1]], add_members_operation=False)
    elif op == "disable":
        db.disable_account("(sAMAccountName=%s)" % ldb.binary_encode(args[0]))
    elif op == "delete":
        res = db.search(base=db.domain_dn(), scope=ldb.SCOPE_SUBTREE,
                        expression="(sAMAccountName=%s)" % ldb.binary_encode(args[0]), attrs=[])
        if len(res) != 1:
            sys.exit("no account %s" % args[0])
        db.delete(res[0].dn)
    else:
        sys.exit("unknown command: %s" % line.strip())
