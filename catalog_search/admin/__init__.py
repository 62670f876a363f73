"""The admin screens, each behind its own permission: the index status page and reindex actions
(index_status.py), the synonyms (synonyms.py) and the query rules (rules.py) staff edit."""

from catalog_search.admin.index_status import attach_reindex_action
from catalog_search.admin.rules import QueryRuleAdmin
from catalog_search.admin.synonyms import SynonymAdmin

__all__ = ["QueryRuleAdmin", "SynonymAdmin", "attach_reindex_action"]
