"""The JSON API: thin routes that parse, call a service and shape the answer."""
