#!/usr/bin/env bash
IO=uring
source "$(dirname "$0")/transfer_cases.sh"
