"""Append-only training logs as TSV (one header line, one row per event), shared by the training scripts."""
import datetime
import pathlib


class TsvLog:
    """Rows go under the file's own header: a new file gets `columns`, an older log keeps the columns it was
    started with (fields it lacks are dropped, missing fields are written empty)."""

    def __init__(self, path: pathlib.Path, columns):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text("\t".join(columns) + "\n")
        self.columns = path.read_text().split("\n", 1)[0].split("\t")

    def row(self, **fields):
        fields["utc_time"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.path, "a") as f:
            f.write("\t".join(str(fields.get(c, "")) for c in self.columns) + "\n")
