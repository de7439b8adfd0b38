"""Each endpoint's pace and pause: the rules (pure), the pace shared through Redis, and an operator's lift."""
