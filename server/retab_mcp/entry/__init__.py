"""What people run: the command line (serving, and a command per tool), the demo, the doctor, and the
terminal's progress bar."""
