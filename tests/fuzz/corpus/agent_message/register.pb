
b
gpu-01	gpu=s4000docker"execdocker"mthreads*

7/dev/test20.1.0:0123456789abcdef