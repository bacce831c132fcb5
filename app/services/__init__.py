"""Cached services: the only place the app touches ``engine`` and ``verification``.

Pages call these functions and draw what they return; each page imports the modules of its
family. Handles (the catalogue, opened run stores and sample files) are ``st.cache_resource``:
opened once per server and shared, never copied. Small results (a rendered map at screen
resolution, a score table, a Foehn time series) are ``st.cache_data``: pickled per call, so
nothing here returns a multi-GB Dataset.

Modules (by page family):

- :mod:`.store`: settings, the catalogue handle, store status, the runs table, ``error_text``;
- :mod:`.fields`: sources of gridded fields (``"dataset:<name>"``, ``"run:<id>"``) and their fields;
- :mod:`.maps`: rendered maps and animations, coastlines and borders;
- :mod:`.nowcast`: the radar observed beside a nowcast, quality reports;
- :mod:`.stations`: stations, observations, forecasts at stations, station scores;
- :mod:`.foehn`: the Foehn station pairs (``assets/foehn_pairs.toml``) and their diagnosis;
- :mod:`.verification`: score tables, the scorecard, metric display units;
- :mod:`.jobs`: job forms, path confinement, running a job;
- :mod:`.cases`: case studies;
- :mod:`.demo_store`: the demo store of the first start.
"""
