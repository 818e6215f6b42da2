# After a cumulative update, the update is disabled: what runs then?
load_lp a
load_lp b
load_lp cum
sleep 1
disable_lp cum
