# main.py: the node (after boot.py). A bad config.json puts the node in a safe idle state that says
# what is wrong on the serial console; it never runs the valve.
from apps import board

board.run()
