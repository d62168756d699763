"""Helpers shared by the test modules and the scripts under bench/: the CLI runner
(``cli``), generated media and free ports (``media``), the committed speech fixtures
(``speech``), synthetic transcripts and the shop talk search tests store (``searchdata``),
real recordings for moment and package tests (``moments``), checks of a recorded chain
(``chain``), PostgreSQL schemas (``postgres``), and real local servers: the live HLS
source (``livesource``), S3 (``s3server``, a pytest plugin), the HTTP API
(``apiserver``) and a webhook receiver (``webhook_receiver``). Test modules import from
here and never from one another or from ``tests.conftest``, which holds only fixtures."""
