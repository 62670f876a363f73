"""The admin screens: the index status page and reindex actions (index_status.py), and the synonyms staff
edit (synonyms.py). Each needs its own permission."""

from catalog_search.admin.index_status import attach_reindex_action
from catalog_search.admin.synonyms import SynonymAdmin

__all__ = ["SynonymAdmin", "attach_reindex_action"]
