"""Studies: declared plans run over the library's recipes (`recipes/`). Each study is a package with its plan file,
its README (what it asks, its endpoints, its spend) and the code that turns the plan into runs and tables; its records
go under `results/<study>/`."""
