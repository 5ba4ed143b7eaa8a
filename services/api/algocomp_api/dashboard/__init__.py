"""The web dashboard: a static single-page application (built from dashboard/ at the repository's root into
./static by `make dashboard`) served at / by the API, with a Content-Security-Policy of its own
(algocomp_api.security.DASHBOARD_CSP). Its pages call the API with the user's token like any client."""
