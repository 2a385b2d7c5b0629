#!/usr/bin/env python3
"""Makes a large VuIO schema-6 database for the migrate benchmark: the rows of the committed
v6 fixture (scripts/make-vuio-fixtures.py, exact VuIO DDL), repeated under numbered copies of
the library root until ROWS rows, with their media_tags and the fixture's playlists.

    bench/make-vuio-large.py ROWS OUT.db
"""
import importlib.util
import os
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows_wanted, out = int(argv[1]), argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "fixtures", os.path.join(here, "..", "scripts", "make-vuio-fixtures.py"))
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    lib = fx.Library(seed=0x5EED_0F_BEEF)
    base = [r for r in fx.make_era_rows(lib, "v6") if r["_file"] is not None]
    playlists = fx.make_playlists(lib, fx.make_era_rows(lib, "v6"), "v6")
    if os.path.exists(out):
        os.remove(out)
    conn = fx.rusqlite_open(out)
    conn.executescript(fx.rusqlite_v6_ddl())
    conn.executescript("PRAGMA user_version = 6")
    conn.execute("BEGIN")
    cols = fx.RUSQLITE_V1_COLUMNS + fx.RUSQLITE_V2_COLUMNS
    n = 0
    copy = 0
    while n < rows_wanted:
        for r in base:
            if n >= rows_wanted:
                break
            n += 1
            c = dict(r)
            c["id"] = n
            c["path"] = "/copy%04d%s" % (copy, r["path"])
            c["parent_path"] = fx.parent_of(c["path"])
            fx.insert_row(conn, c, cols)
            fx.insert_tags(conn, c)
        copy += 1
    fx.insert_rusqlite_playlists(conn, playlists)
    conn.execute("COMMIT")
    fx.finish(conn)
    print("%d rows in %s (%d bytes)" % (n, out, os.path.getsize(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
