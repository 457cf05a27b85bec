"""The orders app's reads, one module per reader: positions (the queue's one rule), orders
(API.md's Order), availability, launches (head office), store_page (a store's live
page), demand (plans and the demand report), campaigns (audiences)."""
