from .cli import kiln

kiln(prog_name="python -m app.engine")
