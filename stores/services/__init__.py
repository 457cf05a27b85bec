"""The stores app's writes: webhooks (the webhooks package) for now."""
