"""The ``payq`` command (``cli``), ``payq serve`` (``serve``: the HTTP intake and the console) and the local stack (``stack``).

Below them, what they share: exit codes and settings (``exits``), job and trip
views (``views``) and spans of time (``durations``). The worker is ``workers``;
neither package imports the other.
"""
