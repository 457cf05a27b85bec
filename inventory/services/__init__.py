"""Inventory's writes, one module per job: stock and the ledger (stock), supplier
deliveries (deliveries), allocation plans (plans), store receiving (receiving), head
office's launch settings (launches).

Only these modules write inventory's tables; other apps call them.
"""

from inventory.services.deliveries import (
    DeliveryError,
    InboxOutcome,
    delivery_announce,
    delivery_inbox_scan,
    delivery_receive,
)
from inventory.services.launches import (
    FAIR_START_FIXED_BEFORE_OPENING,
    FAIR_START_MAX_SECONDS,
    LaunchSettingRefused,
    launch_fair_start_set,
    launch_notice_settings_set,
)
from inventory.services.plans import (
    PlanInvalid,
    PlanNotEditable,
    plan_apply,
    plan_approve,
    plan_line_set,
    plan_lines_set,
    plan_pool_locations,
    plan_suggest,
)
from inventory.services.receiving import over_count_approve, over_count_reject, store_delivery_receive
from inventory.services.stock import (
    Drift,
    InsufficientStock,
    StockChange,
    location_central,
    location_for_store,
    location_online_pool,
    stock_adjust,
    stock_apply,
    stock_receive,
    stock_reconcile,
    stock_reserve_bulk,
    stock_rows_for_update,
)

__all__ = [
    "FAIR_START_FIXED_BEFORE_OPENING",
    "FAIR_START_MAX_SECONDS",
    "LaunchSettingRefused",
    "launch_fair_start_set",
    "DeliveryError",
    "Drift",
    "InboxOutcome",
    "InsufficientStock",
    "PlanInvalid",
    "PlanNotEditable",
    "StockChange",
    "delivery_announce",
    "delivery_inbox_scan",
    "delivery_receive",
    "launch_notice_settings_set",
    "location_central",
    "location_for_store",
    "location_online_pool",
    "over_count_approve",
    "over_count_reject",
    "plan_apply",
    "plan_approve",
    "plan_line_set",
    "plan_lines_set",
    "plan_pool_locations",
    "plan_suggest",
    "stock_adjust",
    "stock_apply",
    "stock_receive",
    "stock_reconcile",
    "stock_reserve_bulk",
    "stock_rows_for_update",
    "store_delivery_receive",
]
