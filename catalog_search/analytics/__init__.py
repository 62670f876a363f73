"""Search analytics: what shoppers search for and do not find. record.py writes searches and interactions
off the request path; reports.py answers the admin screen; purge.py keeps them only as long as configured."""
