*j

7/dev/test(08
RboomZ"*tests/x.py::t2tests/x.py::ub&
ut_output.txt/home/ut_output.txth