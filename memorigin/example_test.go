package memorigin_test

import (
	"context"
	"fmt"

	"github.com/moqstats/moqstats/memorigin"
)

func Example() {
	ctx := context.Background()
	o := memorigin.New()

	bc, err := o.Publish("stats", []string{"publisher.json"})
	if err != nil {
		panic(err)
	}
	b := bc.(*memorigin.Broadcast)
	_ = b.WriteFrame("publisher.json", []byte(`{"v":1}`))
	_ = b.WriteFrame("publisher.json", []byte(`{"v":2}`))

	// A late subscriber starts at the latest frame, then sees every new one.
	sub, err := o.Subscribe("stats", "publisher.json")
	if err != nil {
		panic(err)
	}
	_ = b.WriteFrame("publisher.json", []byte(`{"v":3}`))
	_ = b.Close()

	for {
		frame, err := sub.Next(ctx)
		if err != nil {
			fmt.Println("end:", err)
			break
		}
		fmt.Println(string(frame))
	}
	fmt.Println("writes:", b.Writes("publisher.json"))
	// Output:
	// {"v":2}
	// {"v":3}
	// end: EOF
	// writes: 3
}
