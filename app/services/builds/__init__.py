"""Builds: the one package that owns a build's state, its files and its log.

- `lifecycle`: the state machine (`transition`, checked against the attempt it belongs to) and what users
  do: create, start, cancel, retry, delete, request tests.
- `run`: what a worker does with one attempt: run the engine, the image tests, record stages, progress,
  artifacts and the end of the attempt; custom test runs.
- `reaper`: attempts and test runs whose worker stopped, and what a dead worker left on disk.
- `reads`: fetching builds for a caller, lists, the status and test summaries the API shows.
- `logs`: the log of a build (Redis stream while it runs, build.log on disk for every line).
- `files`, `plan`, `signals`: artifact paths, the stages a build has, the Redis keys a worker and the
  API talk through.
- `views`: what the build pages show people (sizes, durations, sentences).

Modules are imported by name (`from app.services.builds import lifecycle`); this file imports nothing.
"""
