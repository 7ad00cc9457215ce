"""Order backend of the bot: data layer, store policy, business rules and the OrderService interface.

Start with :mod:`actions.orders.service` (the interface), :mod:`actions.orders.rules` (policy
logic) and :mod:`actions.orders.factory` (which implementation runs).
"""
