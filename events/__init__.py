"""Event schemas, the envelope, serialization and upcasters.

Importing the package registers every event type.
"""

from events import order as order
from events import payment as payment
from events import program as program
from events import reference as reference
from events import user as user
