2&
7/xut_output.txt ÿÿÿÿÿÿÿÿÿ*abc