"""Callbacks that add ``convscope.watch`` to Lightning and Keras training in one line.

Import the one you need: ``convscope.integrations.lightning.ConvscopeCallback`` or
``convscope.integrations.keras.ConvscopeCallback``.
"""
