"""`xlcollab build` (the bundled workbooks) and `xlcollab demo` (build them, solve them headless, print RMSE)."""
from __future__ import annotations

import argparse
from pathlib import Path

WORKBOOKS = ("collab_filter", "graddesc")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="generate the bundled workbooks (.xlsx, and .xlsm with buttons)")
    p.add_argument("--out", type=Path, default=Path("workbooks"), help="folder to write into (default: ./workbooks)")
    p.add_argument("--seed", type=int, default=42, help="seed of the random starting values (default 42)")
    p.add_argument("--no-xlsm", action="store_true", help="write only the .xlsx files")
    p.add_argument("--ratings", type=Path, help="build the collab tabs from these ratings (any MovieLens release, "
                   "its folder or ratings file, or a userId,movieId,rating CSV) instead of the embedded MovieLens")
    p.add_argument("--users", type=int, default=15, help="the most active users the collab tabs hold (default 15)")
    p.add_argument("--movies", type=int, default=15, help="the most-rated movies the collab tabs hold (default 15)")
    p.add_argument("--factors", type=int, default=5, help="factors per user and movie on the factor tabs (default 5)")
    p.set_defaults(run=run_build)

    p = sub.add_parser("demo", help="the main job: build the workbooks into a folder and solve them headless, printing RMSE")
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for the built and solved workbooks (default: ./out)")
    p.add_argument("--epochs", type=int, default=1000, help="graddesc epochs per optimizer sheet (default 1000)")
    p.set_defaults(run=run_demo)


def build_all(out: Path, *, seed: int = 42, xlsm: bool = True, ratings: Path | None = None, users: int = 15,
              movies: int = 15, factors: int = 5) -> list[Path]:
    """Write collab_filter and graddesc (.xlsx, plus their .xlsm twins with buttons unless `xlsm` is False)."""
    from xlcollab.sheets import collab, graddesc

    out.mkdir(parents=True, exist_ok=True)
    built = [collab.build_workbook(out / "collab_filter.xlsx", seed=seed, ratings=ratings, n_users=users,
                                   n_movies=movies, n_factors=factors),
             graddesc.build_workbook(out / "graddesc.xlsx", seed=seed)]
    if xlsm:
        from xlcollab.excel.xlsm import make_xlsm

        built += [make_xlsm(built[0], out / "collab_filter.xlsm", collab.BUTTONS),
                  make_xlsm(built[1], out / "graddesc.xlsm", graddesc.BUTTONS)]
    return built


def run_build(args: argparse.Namespace) -> int:
    for path in build_all(args.out, seed=args.seed, xlsm=not args.no_xlsm, ratings=args.ratings, users=args.users,
                          movies=args.movies, factors=args.factors):
        print(f"wrote {path}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from xlcollab.book.filebook import FileBook
    from xlcollab.sheets import collab, graddesc

    collab_path, graddesc_path = build_all(args.out, xlsm=False)[:2]
    print(f"built {collab_path} and {graddesc_path}")
    book = FileBook(collab_path)
    results = collab.solve_book(book, "all")
    book.commit()
    print(f"\n{collab_path.name}: torch in place of Excel Solver")
    print(f"{'sheet':<16}{'start RMSE':>12}{'final RMSE':>12}{'seconds':>9}  device")
    for sheet, r in results.items():
        print(f"{sheet:<16}{r['start_rmse']:>12.4f}{r['final_rmse']:>12.4f}{r['seconds']:>9.2f}  {r['device']}")
    book = FileBook(graddesc_path)
    runs = graddesc.run_book(book, "all", args.epochs)
    book.commit()
    print(f"\n{graddesc_path.name}: {args.epochs} epochs of each update rule, fitting y = a*x + b (true a=2, b=30)")
    w = max(len("sheet"), *map(len, runs)) + 2
    print(f"{'sheet':<{w}}{'a':>10}{'b':>10}{'final loss':>14}")
    for sheet, r in runs.items():
        print(f"{sheet:<{w}}{r['a']:>10.4f}{r['b']:>10.4f}{r['loss']:>14.6g}")
    from xlcollab.core.fit import CollabFit

    fit = CollabFit().fit(None)
    print(f"\nthe same engine on every rating of ml-latest-small ({fit.n_ratings_:,} ratings), default settings:")
    print(f"validation RMSE {fit.valid_rmse_:.4f} after {len(fit.trace_)} epochs, {fit.fit_seconds_:.2f} s on "
          f"{fit.device_} (the model alone {fit.model_valid_rmse_:.4f}; with the session effects of each "
          f"rating's time)")
    print(f"\nsolved workbooks are in {args.out}/ (open them in Excel or LibreOffice: every formula recalculates)")
    return 0
