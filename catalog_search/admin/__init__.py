"""The admin screens, each behind its own permission: the index status page and reindex actions
(index_status.py), the synonyms (synonyms.py) and the query rules (rules.py) staff edit, and the search
analytics (analytics.py)."""

from catalog_search.admin.analytics import SearchAnalyticsAdmin
from catalog_search.admin.index_status import attach_reindex_action
from catalog_search.admin.rules import QueryRuleAdmin
from catalog_search.admin.synonyms import SynonymAdmin

__all__ = ["QueryRuleAdmin", "SearchAnalyticsAdmin", "SynonymAdmin", "attach_reindex_action"]
