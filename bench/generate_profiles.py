#!/usr/bin/env python3
"""Synthetic segment for the benchmarks: N profiles as CSV (Email,FirstName,LastName,Phone).

Deterministic: the same --profiles and --seed give the same file, byte for byte.
--change F rewrites the first name of round(F * N) members, chosen by --change-seed, so a
refresh benchmark can export the same segment again with exactly that many changed members.

    python3 bench/generate_profiles.py --profiles 1000000 --out segment.csv
    python3 bench/generate_profiles.py --profiles 1000000 --change 0.01 --out segment.csv
"""
import argparse
import random
import sys

FIRST = ["Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger", "Frances", "Grace", "Hedy", "Ivan",
         "John", "Katherine", "Linus", "Margaret", "Niklaus", "Ole", "Radia", "Shafi", "Tim", "Vint"]
LAST = ["Lovelace", "Turing", "Liskov", "Shannon", "Ritchie", "Dijkstra", "Allen", "Hopper", "Lamarr",
        "Sutherland", "Backus", "Johnson", "Torvalds", "Hamilton", "Wirth", "Dahl", "Perlman",
        "Goldwasser", "Berners-Lee", "Cerf"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]


def changed_rows(profiles, fraction, seed):
    """Row indices whose members change: exactly round(fraction * profiles), deterministic."""
    count = round(fraction * profiles)
    if count <= 0:
        return frozenset()
    return frozenset(random.Random(seed).sample(range(profiles), count))


def write_profiles(out, profiles, seed=1, change=0.0, change_seed=2):
    rng = random.Random(seed)
    changed = changed_rows(profiles, change, change_seed)
    out.write("Email,FirstName,LastName,Phone\n")
    chunk = []
    for i in range(profiles):
        r = rng.getrandbits(48)
        first = FIRST[r % 20]
        last = LAST[(r >> 5) % 20]
        domain = DOMAINS[(r >> 10) % 4]
        phone = "+1-555-%07d" % ((r >> 12) % 10000000)
        if i in changed:
            first += "-changed"
        # The index keeps every address unique; the random part keeps them irregular.
        chunk.append("%s.%s.%d.%x@%s,%s,%s,%s\n" % (first.lower().split("-")[0], last.lower(), i, r & 0xfff,
                                                  domain, first, last, phone))
        if len(chunk) == 10000:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))
    return len(changed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", type=int, required=True, help="number of profiles (rows)")
    ap.add_argument("--seed", type=int, default=1, help="seed for the profiles (default 1)")
    ap.add_argument("--change", type=float, default=0.0,
                    help="fraction of members whose first name changes (0..1, default 0)")
    ap.add_argument("--change-seed", type=int, default=2, help="seed choosing the changed members (default 2)")
    ap.add_argument("--out", default="-", help="output file (default stdout)")
    args = ap.parse_args(argv)
    if args.profiles < 0 or not 0.0 <= args.change <= 1.0:
        ap.error("--profiles must be >= 0 and --change within 0..1")
    if args.out == "-":
        n = write_profiles(sys.stdout, args.profiles, args.seed, args.change, args.change_seed)
    else:
        with open(args.out, "w", encoding="ascii", newline="") as fh:
            n = write_profiles(fh, args.profiles, args.seed, args.change, args.change_seed)
    print("%d profiles, %d changed" % (args.profiles, n), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
