"""The console's read side: what the operator console and its JSON API show.

reads.py      ConsoleReads / ConsoleViews: the read models' protocol (SQL: adapters/db/console.py)
records.py    the overview, accounts and entitlements (with their timeline)
activity.py   what happens to the records: approvals waiting, the inbox, the report ledger,
              hourly usage (the chart)
"""
