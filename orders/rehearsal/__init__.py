"""A launch morning rehearsed against a running stack (simulate_launch, the rehearsals page).

- `arrivals`: when people arrive, an open loop (non-homogeneous Poisson by thinning);
- `crowd`: who they are and how they behave (retries, patience, two devices, partners' bulk);
- `driver`: sends them over HTTP with httpx, and queues walk-ins at each store's opening;
- `sampler`: queue depth, allocator lag, stock and emails read from the database meanwhile;
- `report`: the figures, the invariants and the HTML page (inline SVG, no network);
- `rehearse`: the whole run, shared by the command and the Celery task.

An entry point, not a core: nothing under models/services/selectors imports it. It lives in
orders, not bench/, because the command and the Celery task import it and nothing may
import bench/.
"""
