from psftr_cli.main import run

run()
