"""Start the real argilla-server (2.x) with a no-op search engine; runs in the server's own venv.

Elasticsearch/OpenSearch cannot be installed where this project is tested, so this
registers an engine named ``noop`` through the server's own registry
(``argilla_server.search_engine.SearchEngine.register``, selected by
``ARGILLA_SEARCH_ENGINE=noop``) before the app is imported by uvicorn. Everything else
(API, validators, database, Redis) is the real server's. Search answers nothing, so this
server is for the API, not the UI's search views.

Usage: ``<server venv>/bin/python launch.py --host 127.0.0.1 --port 6900``
(settings come from ``ARGILLA_*`` environment variables, as for ``argilla_server start``).
This file imports only the server's packages: it never runs in the project's venv.
"""

from __future__ import annotations

import argparse
import os

from argilla_server.search_engine import base

NO_HITS = base.SearchResponses(items=[], total=0)


@base.SearchEngine.register("noop")
class NoopSearchEngine(base.SearchEngine):
    """Implements every abstract method of the server's SearchEngine and indexes nothing."""

    @classmethod
    async def new_instance(cls) -> NoopSearchEngine:
        return cls()

    async def close(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {"engine": "noop", "version": "0"}

    async def create_index(self, dataset) -> None:
        pass

    async def delete_index(self, dataset) -> None:
        pass

    async def configure_metadata_property(self, dataset, metadata_property) -> None:
        pass

    async def index_records(self, dataset, records) -> None:
        pass

    async def partial_record_update(self, record, **update) -> None:
        pass

    async def delete_records(self, dataset, records) -> None:
        pass

    async def update_record_response(self, response) -> None:
        pass

    async def delete_record_response(self, response) -> None:
        pass

    async def update_record_suggestion(self, suggestion) -> None:
        pass

    async def delete_record_suggestion(self, suggestion) -> None:
        pass

    async def get_dataset_progress(self, dataset) -> dict:
        return {}

    async def get_dataset_user_progress(self, dataset, user) -> dict:
        return {}

    async def search(self, dataset, query=None, filter=None, sort=None, offset=0, limit=100):
        return NO_HITS

    async def compute_metrics_for(self, metadata_property):
        if metadata_property.type.value == "terms":
            return base.TermsMetrics(total=0, values=[])
        if metadata_property.type.value == "integer":
            return base.IntegerMetadataMetrics()
        return base.FloatMetadataMetrics()

    async def configure_index_vectors(self, vector_settings) -> None:
        pass

    async def similarity_search(
        self,
        dataset,
        vector_settings,
        value=None,
        record=None,
        query=None,
        filter=None,
        max_results=100,
        order=None,
        threshold=None,
    ):
        return NO_HITS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6900)
    args = parser.parse_args()
    os.environ.setdefault("ARGILLA_SEARCH_ENGINE", "noop")
    import uvicorn

    # Imported here, after the registration above, so the app's lifespan finds "noop".
    from argilla_server import app

    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
