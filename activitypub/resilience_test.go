package activitypub

const childEnv = "STARLING_AP_CHILD"

func runChild(path string) int { return 0 }
