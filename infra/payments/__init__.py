"""Payment providers: the Alipay adapter (``alipay.py``) and the sandbox that speaks its protocol
on loopback (``sandbox.py``). docs/payments.md, "Providers"."""
