:
7/xshutting down