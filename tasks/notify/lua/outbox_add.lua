-- Append an outcome's notification to the outbox (see append_event), for outcomes recorded in a
-- MULTI rather than a script of their own (a plain job's success): queued in the same MULTI.
--#include lib/outbox.lua
append_event(1, ARGV[7])
return 1
