from django.contrib import admin

from catalog.models import Brand, Item, Tag

admin.site.register([Brand, Item, Tag])
